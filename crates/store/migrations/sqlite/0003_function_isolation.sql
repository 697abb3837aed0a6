-- The isolation tier (or OCI runtime) a function's calls run under.
ALTER TABLE function_versions ADD COLUMN isolation TEXT NOT NULL DEFAULT 'standard';
