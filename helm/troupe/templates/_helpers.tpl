{{/*
Names and labels.
*/}}
{{- define "troupe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "troupe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: <fullname>-<component>. */}}
{{- define "troupe.componentName" -}}
{{- printf "%s-%s" (include "troupe.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "troupe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "troupe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "troupe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "troupe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: troupe
{{- end -}}

{{/* Labels of one component; call with (dict "root" $ "component" "order"). */}}
{{- define "troupe.componentSelectorLabels" -}}
{{ include "troupe.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "troupe.componentLabels" -}}
{{ include "troupe.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "troupe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The processes and their kinds, as processors/deploy/src/lib.rs (`Process`) has them: the
choreography's services, the projector, the query API.
*/}}
{{- define "troupe.services" -}}
order inventory payment shipping notification
{{- end -}}

{{- define "troupe.processNames" -}}
order inventory payment shipping notification projector query
{{- end -}}

{{- define "troupe.kind" -}}
{{- if has . (splitList " " (include "troupe.services" .)) -}}service{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/*
Merges `over` into `base` in place, recursively: maps merge key by key; null removes the key
(e.g. `resources.limits.memory: null`); everything else (lists, scalars, including false and 0)
replaces. Sprig's merge/mergeOverwrite cannot be used:
they skip false and 0, so `podDisruptionBudget.enabled: false` would not override a default of
true.
*/}}
{{- define "troupe.mergeInto" -}}
{{- $base := .base -}}
{{- range $key, $value := .over -}}
{{- $current := get $base $key -}}
{{- if kindIs "invalid" $value -}}
{{- $_ := unset $base $key -}}
{{- else if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- include "troupe.mergeInto" (dict "base" $current "over" $value) -}}
{{- else -}}
{{- $_ := set $base $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The settings of process `name`: `defaults` with `processes.<name>` merged over them, plus
`name`, `kind` and `component`. Templates call it as
  {{- $p := include "troupe.process" (dict "root" $ "name" $name) | fromJson }}
JSON keeps every number as it was written only up to 2^53, far above any value here.
*/}}
{{- define "troupe.process" -}}
{{- $settings := deepCopy .root.Values.defaults -}}
{{- $over := deepCopy (get .root.Values.processes .name) -}}
{{- include "troupe.mergeInto" (dict "base" $settings "over" $over) -}}
{{- $_ := set $settings "name" .name -}}
{{- $_ := set $settings "kind" (include "troupe.kind" .name) -}}
{{- toJson $settings -}}
{{- end -}}

{{/* A consumer's group and database names, per the contract (Deployment::group/database). */}}
{{- define "troupe.groupId" -}}
{{- $p := .process -}}
{{- if $p.groupId -}}
{{- $p.groupId -}}
{{- else if eq $p.kind "projector" -}}
{{- printf "troupe-projector-%s" $p.copy -}}
{{- else if .root.Values.deploymentName -}}
{{- printf "troupe-%s-%s" $p.name .root.Values.deploymentName -}}
{{- else -}}
{{- printf "troupe-%s" $p.name -}}
{{- end -}}
{{- end -}}

{{- define "troupe.database" -}}
{{- $p := .process -}}
{{- if $p.database -}}
{{- $p.database -}}
{{- else if .root.Values.deploymentName -}}
{{- printf "troupe_%s_%s" $p.name .root.Values.deploymentName -}}
{{- else -}}
{{- printf "troupe_%s" $p.name -}}
{{- end -}}
{{- end -}}

{{/* The port a process serves /metrics and /health on. */}}
{{- define "troupe.metricsPort" -}}
{{- if eq .kind "query" -}}{{ int .port }}{{- else -}}{{ int .metricsPort }}{{- end -}}
{{- end -}}

{{- define "troupe.secretName" -}}
{{- default (include "troupe.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{/*
Whether the chart must create a Secret at all.
*/}}
{{- define "troupe.createSecret" -}}
{{- if not .Values.secret.existingSecret -}}true{{- end -}}
{{- end -}}

{{/*
The servers' variables every process gets (the contract's `servers`): where Kafka, the
registry, PostgreSQL and ScyllaDB are. The PostgreSQL URL holds a password, so it always comes
from the Secret. Call with (dict "root" $ "secret" <secret name>).
*/}}
{{- define "troupe.serverEnv" -}}
{{- $root := .root -}}
- name: TROUPE_KAFKA_BOOTSTRAP
  value: {{ $root.Values.kafka.bootstrap | quote }}
- name: TROUPE_SCHEMA_REGISTRY_URL
  value: {{ $root.Values.schemaRegistry.url | quote }}
- name: TROUPE_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secret.keys.postgresUrl }}
- name: TROUPE_SCYLLA_NODES
  value: {{ $root.Values.scylla.nodes | quote }}
{{- include "troupe.authEnv" . }}
{{- end -}}

{{/*
Kafka SASL/TLS and the registry's basic auth and CA (processors/runtime/src/security.rs reads
them; the README's configuration table lists them). Only consistent combinations are emitted:
the protocol is kafka.sasl.securityProtocol with SASL, SSL with kafka.tls alone; the CA and the
client certificate only when the protocol uses TLS. Call with (dict "root" $ "secret" <name>).
*/}}
{{- define "troupe.authEnv" -}}
{{- $root := .root -}}
{{- $kafka := $root.Values.kafka -}}
{{- if $kafka.sasl.enabled }}
- name: TROUPE_KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.sasl.securityProtocol | quote }}
- name: TROUPE_KAFKA_SASL_MECHANISM
  value: {{ $kafka.sasl.mechanism | quote }}
- name: TROUPE_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secret.keys.kafkaSaslUsername }}
- name: TROUPE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secret.keys.kafkaSaslPassword }}
{{- else if $kafka.tls.enabled }}
- name: TROUPE_KAFKA_SECURITY_PROTOCOL
  value: "SSL"
{{- end }}
{{- if include "troupe.kafkaTls" $root }}
{{- if $kafka.sasl.caSecret }}
- name: TROUPE_KAFKA_SSL_CA_LOCATION
  value: /etc/troupe-kafka-ca/ca.crt
{{- end }}
{{- if $kafka.tls.clientCertSecret }}
- name: TROUPE_KAFKA_SSL_CERTIFICATE_LOCATION
  value: /etc/troupe-kafka-client/tls.crt
- name: TROUPE_KAFKA_SSL_KEY_LOCATION
  value: /etc/troupe-kafka-client/tls.key
{{- end }}
{{- end }}
{{- if $root.Values.schemaRegistry.auth.enabled }}
- name: TROUPE_SCHEMA_REGISTRY_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secret.keys.schemaRegistryUsername }}
- name: TROUPE_SCHEMA_REGISTRY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secret.keys.schemaRegistryPassword }}
{{- end }}
{{- if $root.Values.schemaRegistry.caSecret }}
- name: TROUPE_SCHEMA_REGISTRY_CA_LOCATION
  value: /etc/troupe-registry-ca/ca.crt
{{- end }}
{{- end -}}

{{/* "true" when the Kafka protocol the chart sets uses TLS (SASL_SSL, or kafka.tls alone). */}}
{{- define "troupe.kafkaTls" -}}
{{- $kafka := .Values.kafka -}}
{{- if $kafka.sasl.enabled -}}
{{- if eq $kafka.sasl.securityProtocol "SASL_SSL" }}true{{ end -}}
{{- else if $kafka.tls.enabled -}}
true
{{- end -}}
{{- end -}}

{{/*
The Secrets that hold TLS material, as volumes and mounts: the brokers' CA
(kafka.sasl.caSecret), the Kafka client certificate (kafka.tls.clientCertSecret), the
registry's CA (schemaRegistry.caSecret). Each only when troupe.authEnv points at it.
*/}}
{{- define "troupe.caVolume" -}}
{{- $kafkaTls := include "troupe.kafkaTls" . -}}
{{- if and $kafkaTls .Values.kafka.sasl.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.sasl.caSecret }}
{{- end }}
{{- if and $kafkaTls .Values.kafka.tls.clientCertSecret }}
- name: kafka-client
  secret:
    secretName: {{ .Values.kafka.tls.clientCertSecret }}
{{- end }}
{{- if .Values.schemaRegistry.caSecret }}
- name: registry-ca
  secret:
    secretName: {{ .Values.schemaRegistry.caSecret }}
{{- end }}
{{- end -}}

{{- define "troupe.caMount" -}}
{{- $kafkaTls := include "troupe.kafkaTls" . -}}
{{- if and $kafkaTls .Values.kafka.sasl.caSecret }}
- name: kafka-ca
  mountPath: /etc/troupe-kafka-ca
  readOnly: true
{{- end }}
{{- if and $kafkaTls .Values.kafka.tls.clientCertSecret }}
- name: kafka-client
  mountPath: /etc/troupe-kafka-client
  readOnly: true
{{- end }}
{{- if .Values.schemaRegistry.caSecret }}
- name: registry-ca
  mountPath: /etc/troupe-registry-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level security: a fixed non-root user, the runtime's default seccomp profile. */}}
{{- define "troupe.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "troupe.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Every container writes only to /tmp, an emptyDir. */}}
{{- define "troupe.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "troupe.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
The environment of the CLI (hook Job, helm test): where the servers are, the topology file,
the topic prefix. Call with (dict "root" $ "secret" <secret name>).
*/}}
{{- define "troupe.cliEnv" -}}
- name: TROUPE_KAFKA_BOOTSTRAP
  value: {{ .root.Values.kafka.bootstrap | quote }}
- name: TROUPE_SCHEMA_REGISTRY_URL
  value: {{ .root.Values.schemaRegistry.url | quote }}
- name: TROUPE_TOPICS_FILE
  value: /etc/troupe/topics.yaml
- name: TROUPE_TOPIC_PREFIX
  value: {{ .root.Values.topicPrefix | quote }}
{{- include "troupe.authEnv" . }}
{{- end -}}

{{/*
The keys of the Secret the chart creates; with (dict "root" $ "hook" true), only what the setup
Job reads (no PostgreSQL URL).
*/}}
{{- define "troupe.secretData" -}}
{{- with .root }}
{{- if not $.hook }}
{{ .Values.secret.keys.postgresUrl }}: {{ .Values.postgres.url | quote }}
{{- end }}
{{- if .Values.kafka.sasl.enabled }}
{{ .Values.secret.keys.kafkaSaslUsername }}: {{ required "kafka.sasl.username is required when kafka.sasl.enabled (or use secret.existingSecret)" .Values.kafka.sasl.username | quote }}
{{ .Values.secret.keys.kafkaSaslPassword }}: {{ required "kafka.sasl.password is required when kafka.sasl.enabled (or use secret.existingSecret)" .Values.kafka.sasl.password | quote }}
{{- end }}
{{- if .Values.schemaRegistry.auth.enabled }}
{{ .Values.secret.keys.schemaRegistryUsername }}: {{ required "schemaRegistry.auth.username is required when schemaRegistry.auth.enabled (or use secret.existingSecret)" .Values.schemaRegistry.auth.username | quote }}
{{ .Values.secret.keys.schemaRegistryPassword }}: {{ required "schemaRegistry.auth.password is required when schemaRegistry.auth.enabled (or use secret.existingSecret)" .Values.schemaRegistry.auth.password | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Secret the hook Job reads: the hook copy when the chart creates the Secret. */}}
{{- define "troupe.setupSecretName" -}}
{{- if and (include "troupe.createSecret" .) (or .Values.kafka.sasl.enabled .Values.schemaRegistry.auth.enabled) -}}
{{- include "troupe.fullname" . }}-setup
{{- else -}}
{{- include "troupe.secretName" . -}}
{{- end -}}
{{- end -}}

{{/*
Fails when an autoscaler could give a consumer group more members than partitions, or when
the bounds make no sense. Call with (dict "root" $ "process" $p).
*/}}
{{- define "troupe.checkAutoscaling" -}}
{{- $p := .process -}}
{{- $a := $p.autoscaling -}}
{{- $partitions := int .root.Values.partitions -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "processes.%s.autoscaling: minReplicas %d is above maxReplicas %d" $p.name (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- end -}}
{{- if and (ne $p.kind "query") (gt (int $a.maxReplicas) $partitions) -}}
{{- fail (printf "processes.%s.autoscaling.maxReplicas is %d, more than the %d partitions: the extra members would sit idle" $p.name (int $a.maxReplicas) $partitions) -}}
{{- end -}}
{{- end -}}
