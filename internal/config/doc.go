// Package config reads berth's configuration: the config.yml format of CNCF
// distribution (registry:2) and its REGISTRY_* environment overrides, so an
// existing registry:2 setup starts berth unchanged. docs/configuration.md is
// the operator's reference; this comment states the rules the code follows.
//
// # Sources and precedence
//
// Load(path, environ) starts from the file at path ("" means no file), then
// applies the REGISTRY_* variables of environ, then fills defaults for what
// is still unset, then validates. Defaults with neither file nor environment:
// http.addr ":5000", storage.filesystem.rootdirectory "./data", log.level
// "info", log.formatter "text", http.draintimeout 0 (stop at once on SIGTERM,
// as registry:2 does), storage.delete.enabled false, berth.manifests.maxsize
// 4 MiB, berth.ui.enabled true. A storage driver comes from defaults only
// if neither the file nor the environment names one, so
// REGISTRY_STORAGE_S3_BUCKET alone (no file) selects s3.
//
// # Environment variables (distribution's rules)
//
//   - Only names starting with the upper-case prefix REGISTRY_ are read. The
//     rest of the name is split on "_" and each piece matched, ignoring case,
//     against the YAML keys at that level: REGISTRY_STORAGE_S3_BUCKET sets
//     storage.s3.bucket. Keys therefore never contain "_".
//   - Variables are applied in order of their names, so REGISTRY_STORAGE is
//     applied before REGISTRY_STORAGE_SWIFT_USERNAME.
//   - The value is parsed as YAML: "true" is a boolean, "10s" a duration,
//     'enabled: true' a mapping, '{X-Foo: [bar]}' a mapping of lists. A value
//     that is not valid YAML is taken as a literal string (registry:2 fails).
//   - A variable naming a section replaces that whole section.
//     REGISTRY_STORAGE=<driver> and REGISTRY_AUTH=<provider> select a driver
//     or provider by name (no parameters) and drop the one from the file;
//     berth keeps the file's driver-independent storage keys (delete,
//     maintenance, cache, redirect, tag), where registry:2 drops them too,
//     and says so in a warning.
//   - Inside maps (log.fields, http.headers, driver parameters, ...) a
//     variable may add any key; a new key is lower-cased, an existing one
//     is matched ignoring case and keeps its spelling.
//   - A list element is addressed by index (REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_0),
//     as distribution 3 allows; index len(list) appends.
//   - Where distribution's Go field name differs from the YAML key, the Go
//     spelling is accepted too: notifications EVENTCONFIG (events), health
//     FILECHECKERS/HTTPCHECKERS/TCPCHECKERS (file/http/tcp), schema1
//     TRUSTKEY (signingkeyfile).
//   - REGISTRY_CONFIGURATION_PATH names the config file (see PathFromEnv)
//     and is otherwise ignored.
//
// # Unknown keys and mistakes
//
// An unknown key in the file, or a REGISTRY_ variable that names no key, is
// an error naming the full dotted path and where it was set:
//
//	config.yml:12: unknown key "auth.htpasswd.pathh" (did you mean "auth.htpasswd.path"?)
//	REGISTRY_HTTP_ADR: unknown key "http.adr" (did you mean "http.addr"?)
//	config.yml:7: http.addr: expected a string, got a mapping
//
// (registry:2 silently ignores unknown keys in the file and only logs
// unknown variables.) Exceptions, which are warnings and never errors:
// variables Kubernetes service links and Docker links inject for a service
// or container called "registry..." (REGISTRY_SERVICE_HOST, REGISTRY_PORT,
// REGISTRY_PORT_5000_TCP_ADDR, REGISTRY_UI_SERVICE_PORT, REGISTRY_NAME,
// REGISTRY_ENV_*), and variables that are not applied because their prefix
// is not exactly REGISTRY_ (registry_auth, REGISTY_HTTP_ADDR) but the rest
// names a key.
//
// # Warnings
//
// Config.Warnings lists keys that registry:2 knows but berth does not
// implement yet (see the Implemented table), deprecated keys (loglevel,
// validation.enabled, storage.cache.layerinfo), durations written as bare
// integers (nanoseconds, as in registry:2), duplicate keys (the later wins,
// as in registry:2), and the environment variables above.
//
// Scalars are read as registry:2 reads them: any scalar is a valid string,
// booleans accept true/false/yes/no/on/off, and a duration is a Go duration
// ("90s", "1h30m") or an integer number of nanoseconds.
package config
