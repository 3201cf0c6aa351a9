"""Writes helm/troupe/values.schema.json: python3 helm/values-schema.py > helm/troupe/values.schema.json

The schema repeats the `defaults` keys under every entry of `processes` (additionalProperties
false at every level cannot be combined with allOf), so it is generated from one description
here rather than edited by hand. Keep it in step with helm/troupe/values.yaml.
"""
import json, copy

def obj(props, required=(), desc=None, **extra):
    o = {"type": "object", "additionalProperties": False, "properties": props}
    if required: o["required"] = list(required)
    if desc: o["description"] = desc
    o.update(extra)
    return o

def s(desc=None, **kw):
    o = {"type": "string"}; o.update(kw)
    if desc: o["description"] = desc
    return o
def i(minimum=0, maximum=None, desc=None):
    o = {"type": "integer", "minimum": minimum}
    if maximum is not None: o["maximum"] = maximum
    if desc: o["description"] = desc
    return o
def b(desc=None):
    o = {"type": "boolean"}
    if desc: o["description"] = desc
    return o
def strmap(desc=None, keypattern=None):
    o = {"type": "object", "additionalProperties": {"type": "string"}}
    if keypattern: o["propertyNames"] = {"pattern": keypattern}
    if desc: o["description"] = desc
    return o

quantity = {"type": ["string", "integer", "number", "null"], "pattern": r"^[0-9.]+[a-zA-Z]*$"}
resource_list = obj({"cpu": quantity, "memory": quantity, "ephemeral-storage": quantity})
resources = obj({"requests": resource_list, "limits": resource_list})
duration = s(pattern=r"^[0-9]+(ms|s|m|h)$")
prom_duration = s(pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$")
label_selector = obj({
    "matchLabels": strmap(),
    "matchExpressions": {"type": "array", "items": obj({
        "key": s(), "operator": s(enum=["In", "NotIn", "Exists", "DoesNotExist"]),
        "values": {"type": "array", "items": s()}}, required=["key", "operator"])},
})
peer = obj({
    "podSelector": label_selector,
    "namespaceSelector": label_selector,
    "ipBlock": obj({"cidr": s(), "except": {"type": "array", "items": s()}}, required=["cidr"]),
})
toleration = obj({
    "key": s(), "operator": s(enum=["Exists", "Equal"]), "value": s(),
    "effect": s(enum=["NoSchedule", "PreferNoSchedule", "NoExecute", ""]),
    "tolerationSeconds": i(),
})
# Kubernetes' own affinity types are deep; the top level is checked, the rest is Kubernetes'.
affinity = obj({"nodeAffinity": {"type": "object"}, "podAffinity": {"type": "object"},
                "podAntiAffinity": {"type": "object"}})
probe = obj({"periodSeconds": i(1), "timeoutSeconds": i(1), "failureThreshold": i(1),
             "initialDelaySeconds": i(0)})
env_name = r"^[A-Za-z_][A-Za-z0-9_]*$"

settings = {
    "replicas": i(0, desc="Pods of this process (no more than `partitions` for a consumer)."),
    "resources": resources,
    "env": strmap("Further variables (the contract's settings): NAME: value.", env_name),
    "metricsPort": i(1, 65535, "Port of /metrics and the probes /live, /ready (TROUPE_METRICS_LISTEN)."),
    "terminationGracePeriodSeconds": i(1),
    "preStopSleepSeconds": i(0, 300),
    "probes": obj({"startup": probe, "liveness": probe, "readiness": probe}),
    "podDisruptionBudget": obj({"enabled": b(), "maxUnavailable": {
        "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^[0-9]+%$"}]}}),
    "topologySpread": obj({"enabled": b(), "maxSkew": i(1),
                           "whenUnsatisfiable": s(enum=["ScheduleAnyway", "DoNotSchedule"])}),
    "autoscaling": obj({
        "minReplicas": i(1), "maxReplicas": i(1),
        "scaleDownStabilizationSeconds": i(0, 3600),
        "keda": obj({
            "enabled": b(), "serverAddress": s(pattern=r"^https?://"),
            "metric": s(enum=["seconds", "messages"]),
            "target": {"type": "number", "exclusiveMinimum": 0},
            "activationTarget": {"type": "number", "minimum": 0},
            "excludeStuckAfter": prom_duration,
            "closeWithinSeconds": i(0),
            "pollingInterval": i(1), "cooldownPeriod": i(0),
        }),
        "hpa": obj({"enabled": b(), "targetCPUUtilizationPercentage": i(1, 1000)}),
    }),
    "nodeSelector": strmap(),
    "tolerations": {"type": "array", "items": toleration},
    "affinity": affinity,
    "priorityClassName": s(),
    "podAnnotations": strmap(),
    "podLabels": strmap(),
}

def process(extra, drop=()):
    props = {k: copy.deepcopy(v) for k, v in settings.items() if k not in drop}
    props["enabled"] = b()
    props.update(extra)
    return obj(props, required=["enabled"])

db = s("TROUPE_DATABASE (empty: troupe_<name>[_<deploymentName>]).", pattern=r"^[A-Za-z0-9_]*$")
group = s("TROUPE_GROUP_ID (empty: troupe-<name>[-<deploymentName>]).")
copy_name = s(pattern=r"^[a-z0-9_]+$")

services = {n: process({"database": db, "groupId": group})
            for n in ["order", "inventory", "payment", "shipping", "notification"]}
processes = dict(services)
processes["projector"] = process({"copy": copy_name, "groupId": group})
processes["query"] = process({
    "port": i(1, 65535, "TROUPE_QUERY_LISTEN 0.0.0.0:<port>; also /metrics and the probes /live, /ready."),
    "copy": s(pattern=r"^[a-z0-9_]*$"),
    "waitMs": i(0),
    "sagaStallAfter": duration,
}, drop=("metricsPort",))

schema = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "troupe chart values",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "global": {"type": "object", "description": "Helm's global values (unused by this chart)."},
        "nameOverride": s(), "fullnameOverride": s(),
        "image": obj({"repository": s(minLength=1), "tag": s(),
                      "pullPolicy": s(enum=["Always", "IfNotPresent", "Never"])}, required=["repository"]),
        "imagePullSecrets": {"type": "array", "items": obj({"name": s(minLength=1)}, required=["name"])},
        "serviceAccountName": s(),
        "deploymentName": s(pattern=r"^[a-z0-9_]*$"),
        "topicPrefix": s(),
        "listenHost": s(enum=["0.0.0.0", "127.0.0.1", "[::]"]),
        "partitions": i(1),
        "kafka": obj({
            "bootstrap": s(minLength=1),
            "sasl": obj({"enabled": b(),
                         "securityProtocol": s(enum=["SASL_PLAINTEXT", "SASL_SSL"]),
                         "mechanism": s(enum=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
                         "username": s(), "password": s(), "caSecret": s()}),
            "tls": obj({"enabled": b(), "clientCertSecret": s()}),
        }, required=["bootstrap"]),
        "schemaRegistry": obj({"url": s(pattern=r"^https?://"),
                               "auth": obj({"enabled": b(), "username": s(), "password": s()}),
                               "caSecret": s()},
                              required=["url"]),
        "postgres": obj({"url": s(pattern=r"^postgres(ql)?://")}),
        "scylla": obj({"nodes": s(minLength=1)}),
        "secret": obj({"existingSecret": s(), "keys": obj({k: s(minLength=1) for k in [
            "postgresUrl", "kafkaSaslUsername", "kafkaSaslPassword",
            "schemaRegistryUsername", "schemaRegistryPassword"]})}),
        "defaults": obj(copy.deepcopy(settings)),
        "processes": obj(processes),
        "service": obj({"port": i(1, 65535), "annotations": strmap()}),
        "lagExporter": obj({"enabled": b(), "port": i(1, 65535), "interval": i(1, 3600),
                            "resources": resources}),
        "setup": obj({"enabled": b(), "activeDeadlineSeconds": i(1), "resources": resources}),
        "metrics": obj({"serviceMonitor": obj({"enabled": b(), "interval": prom_duration,
                                               "scrapeTimeout": prom_duration, "labels": strmap()})}),
        "prometheusRule": obj({"enabled": b(), "labels": strmap()}),
        "dashboards": obj({"enabled": b(), "labels": strmap(), "annotations": strmap()}),
        "networkPolicy": obj({"enabled": b(),
                              "metricsFrom": {"type": "array", "minItems": 1, "items": peer},
                              "queryFrom": {"type": "array", "minItems": 1, "items": peer}}),
        "tests": obj({"enabled": b(), "orders": i(1, 1000),
                      "scenario": s("Scenarios whose customers are cust-<n> (mixed, expiry and review-declined use review-* customers, so the read-back of cust-0 would not find them).",
                                    enum=["happy", "out-of-stock", "payment-declined", "unserved",
                                          "cancel", "invalid", "cancel-race"]),
                      "waitSeconds": i(1)}),
    },
}
print(json.dumps(schema, indent=2))
