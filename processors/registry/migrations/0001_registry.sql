-- Schemas are global: one id per distinct (type, canonical text, references).
CREATE TABLE IF NOT EXISTS schemas (
    id          SERIAL PRIMARY KEY,
    schema_type TEXT NOT NULL,
    canonical   TEXT NOT NULL,
    refs        JSONB NOT NULL DEFAULT '[]',
    fingerprint TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per version of a subject; soft deletion keeps the row.
CREATE TABLE IF NOT EXISTS subject_versions (
    subject    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    schema_id  INTEGER NOT NULL REFERENCES schemas (id),
    deleted    BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS subject_versions_schema_id ON subject_versions (schema_id);

-- Compatibility levels: subject '' is the global level.
CREATE TABLE IF NOT EXISTS compatibility_config (
    subject       TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
