package config

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redaction is what Redacted puts in place of a secret.
const Redaction = "<redacted>"

// secretKeys are map keys whose values are secrets wherever they appear
// (compared case-insensitively). Paths to key files (http.tls.key,
// compatibility.schema1.signingkeyfile, ...) are not secrets and are shown.
var secretKeys = map[string]bool{
	"password":            true,
	"secret":              true,
	"secretkey":           true,
	"accesskey":           true,
	"accesskeyid":         true,
	"accesskeysecret":     true,
	"accountkey":          true,
	"sessiontoken":        true,
	"apikey":              true,
	"licensekey":          true,
	"credentials":         true,
	"private_key":         true,
	"privatekey":          true,
	"sentinelpassword":    true,
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	return secretKeys[k] || strings.Contains(k, "password") || strings.Contains(k, "secret")
}

// Redacted returns the effective configuration (file, environment and
// defaults) as YAML, with every secret replaced by "<redacted>": passwords,
// http.secret, storage access and secret keys, redis passwords, API and
// license keys, Authorization headers, and passwords inside URLs. An empty
// secret is shown as empty, so an unset one can be told from a set one.
func (c *Config) Redacted() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	redactNode(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func redactNode(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isSecretKey(k.Value) {
				redactAll(v)
				continue
			}
			if strings.EqualFold(k.Value, "dsn") && v.Kind == yaml.ScalarNode {
				v.Value = redactDSN(v.Value)
				continue
			}
			redactNode(v)
		}
	case yaml.ScalarNode:
		n.Value = redactURL(n.Value)
	}
}

// redactAll replaces every non-empty scalar under n.
func redactAll(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "" && n.ShortTag() != "!!null" {
			n.Value, n.Tag, n.Style = Redaction, "!!str", 0
		}
	case yaml.MappingNode:
		// Keep the keys, hide the values.
		for i := 1; i < len(n.Content); i += 2 {
			redactAll(n.Content[i])
		}
	default:
		for _, c := range n.Content {
			redactAll(c)
		}
	}
}

// redactURL hides the password of a URL with user information
// (https://user:pass@host/...).
func redactURL(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), "REDACTED")
	return strings.Replace(u.String(), "REDACTED", Redaction, 1)
}

// dsnPassword matches the password of a key=value connection string
// (PostgreSQL's "host=db user=berth password='s e c'"), quoted or not.
var dsnPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']\S*)`)

// redactDSN hides the password of a database connection string, in URL or
// key=value form.
func redactDSN(s string) string {
	if strings.Contains(s, "://") {
		return urlPasswordParam.ReplaceAllString(redactURL(s), "${1}"+Redaction)
	}
	return dsnPassword.ReplaceAllString(s, "${1}"+Redaction)
}

// urlPasswordParam matches a password passed as a URL query parameter
// (postgres://db/berth?password=...).
var urlPasswordParam = regexp.MustCompile(`(?i)([?&]password=)[^&]*`)
