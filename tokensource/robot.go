package tokensource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// Robot account formats ParseRobotAccount understands.
const (
	RobotFormatHarbor = "Harbor"
	RobotFormatQuay   = "Quay"
)

// robotExpiryWarning is how long before expiry a Harbor robot starts to
// be warned about.
const robotExpiryWarning = 7 * 24 * time.Hour

// RobotAccount is a registry robot account with static credentials, read
// from the file its registry exported. Robots not linked to a service
// account keep working this way without their secret in any config.
type RobotAccount struct {
	// Name is the login, byte for byte: Harbor's robot$project+name or
	// Quay's org+name. Shells mangle the $; we never pass it through one.
	Name   string
	Secret string
	// ExpiresAt is zero when the robot never expires.
	ExpiresAt time.Time
	// Format is RobotFormatHarbor or RobotFormatQuay.
	Format string
}

// robotFile is the union of Harbor's "export to file" JSON and Quay's
// robot JSON. Other fields (creation_time, id, description, ...) are
// ignored, because both registries add fields over time.
type robotFile struct {
	Name      *string         `json:"name"`
	Secret    *string         `json:"secret"`
	Token     *string         `json:"token"`
	ExpiresAt json.RawMessage `json:"expires_at"`
	Auths     json.RawMessage `json:"auths"`
	// A STACKIT service account key has these instead.
	Credentials json.RawMessage `json:"credentials"`
	PublicKey   json.RawMessage `json:"publicKey"`
	KeyType     json.RawMessage `json:"keyType"`
}

// ParseRobotAccount decodes a Harbor robot export
// ({"name","secret","expires_at",...}, expires_at in Unix seconds, -1 for
// never) or a Quay robot ({"name","token",...}). It is pure: no clock, no
// files, so that it can be fuzzed. Errors never contain the secret.
func ParseRobotAccount(data []byte) (*RobotAccount, error) {
	var f robotFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a robot account JSON object (%s); expected Harbor's export {\"name\": \"robot$project+ci\", \"secret\": \"…\"} or Quay's {\"name\": \"org+ci\", \"token\": \"…\"}", safefile.DescribeJSONError(data, err))
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value; a robot account file holds one object")
	}
	if f.Name == nil && f.Secret == nil && f.Token == nil && len(f.Auths) > 0 {
		return nil, errors.New(`this is a Docker config with "auths", not a robot account; download the robot's JSON instead (Harbor: Export to file; Quay: the robot's JSON view)`)
	}
	if f.Name == nil && f.Secret == nil && f.Token == nil && (len(f.Credentials) > 0 || len(f.PublicKey) > 0 || len(f.KeyType) > 0) {
		return nil, errors.New("this is a STACKIT service account key, not a robot account; use serviceAccountKeyPath for it instead of robotAccountPath")
	}
	if f.Name == nil || *f.Name == "" {
		return nil, errors.New(`no "name"; expected the robot's login, e.g. robot$project+ci`)
	}
	name := *f.Name
	if err := checkRobotName(name); err != nil {
		return nil, err
	}

	r := &RobotAccount{Name: name}
	switch {
	case f.Secret != nil && f.Token != nil && *f.Secret != *f.Token:
		return nil, errors.New(`both "secret" (Harbor) and "token" (Quay) are set and differ; keep the one the registry exported`)
	case f.Secret != nil:
		r.Secret, r.Format = *f.Secret, RobotFormatHarbor
	case f.Token != nil:
		r.Secret, r.Format = *f.Token, RobotFormatQuay
	default:
		return nil, fmt.Errorf(`robot %s has no "secret" (Harbor) or "token" (Quay); export the robot again with its secret`, name)
	}
	if r.Secret == "" {
		return nil, fmt.Errorf("robot %s has an empty secret; refresh the secret in the registry and export it again", name)
	}
	if !utf8.ValidString(r.Secret) || strings.ContainsFunc(r.Secret, func(c rune) bool { return unicode.IsControl(c) || unicode.IsSpace(c) }) {
		return nil, fmt.Errorf("robot %s has a secret with spaces or control characters, which no registry issues; export it again", name)
	}

	exp, err := parseExpiresAt(f.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("robot %s: %w", name, err)
	}
	r.ExpiresAt = exp
	return r, nil
}

// checkRobotName accepts any printable name, byte for byte, and rejects
// what would break the protocol or is reserved by Docker.
func checkRobotName(name string) error {
	switch {
	case !utf8.ValidString(name):
		return errors.New(`"name" is not valid UTF-8`)
	case strings.ContainsFunc(name, unicode.IsControl):
		return errors.New(`"name" contains control characters; expected e.g. robot$project+ci`)
	case strings.TrimSpace(name) != name:
		return errors.New(`"name" starts or ends with spaces; expected e.g. robot$project+ci`)
	case name == "<token>":
		return errors.New(`"name" is <token>, which Docker reserves for identity tokens`)
	case len(name) > 255:
		return errors.New(`"name" is longer than 255 bytes; expected e.g. robot$project+ci`)
	}
	return nil
}

// parseExpiresAt reads Harbor's expires_at: Unix seconds, -1 for never.
// Absent or null (Quay) also means never. A numeric string is tolerated,
// as tools that rewrite JSON sometimes quote numbers.
func parseExpiresAt(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return time.Time{}, errors.New(`"expires_at" is not a number; Harbor writes Unix seconds, or -1 for never`)
	}
	secs, err := n.Int64()
	if err != nil {
		// Tolerate 1628949525.0 from tools that rewrite the JSON.
		f, ferr := n.Float64()
		if ferr != nil || f != math.Trunc(f) || f > math.MaxInt64 || f < math.MinInt64 {
			return time.Time{}, errors.New(`"expires_at" is not a whole number of seconds; Harbor writes Unix seconds, or -1 for never`)
		}
		secs = int64(f)
	}
	switch {
	case secs == -1:
		return time.Time{}, nil
	case secs <= 0:
		return time.Time{}, fmt.Errorf(`"expires_at" is %d; Harbor writes Unix seconds, or -1 for never`, secs)
	case secs > 253402300799: // 9999-12-31: beyond that the date is garbage
		return time.Time{}, fmt.Errorf(`"expires_at" %d is after the year 9999; Harbor writes Unix seconds, not milliseconds`, secs)
	}
	return time.Unix(secs, 0).UTC(), nil
}

// readRobotAccount reads and parses the robot file at path. It is read on
// every get (each get is a new process), so a replaced file takes effect at
// once and its secret is never copied anywhere.
//
// Like ssh with key files, it refuses a file that another user could have
// written (the file or its directory writable by group or others, or
// owned by someone else than the user or root): whoever can write it
// decides which secret is sent. It warns, at most once a day, when others
// can read the secret.
func readRobotAccount(path, origin string, p platform.Platform) (*RobotAccount, []Warning, error) {
	data, mode, err := readSmallFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read robot account file %s: %s; fix robotAccountPath in %s", path, describeFileError(err), origin)
	}
	if err := safefile.CheckTrusted(path, p); err != nil {
		return nil, nil, untrustedRobotFile(path, err)
	}
	r, err := ParseRobotAccount(data)
	if err != nil {
		return nil, nil, fmt.Errorf("robot account file %s: %w", path, err)
	}
	var warnings []Warning
	if mode&0o077 != 0 && p.UnixPermissions() {
		warnings = append(warnings, Warning{
			Message:  fmt.Sprintf("robot account file %s is readable by others (mode %04o); run: chmod 600 %s", path, mode, safefile.ShellQuote(path)),
			OnceADay: "mode\x00" + path,
		})
	}
	return r, warnings, nil
}

// untrustedRobotFile words a failed trust check of the robot file at path.
func untrustedRobotFile(path string, err error) error {
	var e *safefile.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("robot account file %s: %w", path, err)
	}
	what := "robot account file " + path + " " + e.Problem
	if e.Path != path {
		what = "robot account file " + path + ": its directory " + e.Path + " " + e.Problem
	}
	if errors.Is(err, safefile.ErrUntrusted) {
		what += ", so another user could replace the robot's secret; refusing to use it"
	}
	return problem.Wrap(err, what, e.Fix)
}

// robotFlow serves a registry from a robot account file. Discovery only
// names the file; Token reads it, every time.
func robotFlow(opts Options, o Overrides) *Flow {
	r := &robotSource{path: o.RobotAccountPath, origin: o.origin(), now: opts.now(), sys: opts.sys()}
	f := &Flow{
		Kind: KindRobot, Source: "robot account file " + r.path, Static: true,
		Reason: o.origin() + " sets robotAccountPath for this registry; the file is read on every get",
		source: r,
		Facts: []Fact{
			{"credentials", "robot account file " + r.path},
			{"why", o.origin() + " sets robotAccountPath for this registry; the file is read on every get"},
		},
	}
	// The login name is in the file: read it once for the plan, so list
	// and status can show it; Token reads the file again.
	if acct, warnings, err := readRobotAccount(r.path, r.origin, r.sys); err == nil {
		f.Username = acct.Name
		f.Warnings = warnings
	}
	f.check = func() ([]Fact, error) {
		acct, _, err := readRobotAccount(r.path, r.origin, r.sys)
		if err != nil {
			return nil, err
		}
		expires := "never"
		if !acct.ExpiresAt.IsZero() {
			expires = acct.ExpiresAt.UTC().Format(time.RFC3339)
		}
		return []Fact{{"account", acct.Name + " (" + acct.Format + " robot)"}, {"expires", expires}}, nil
	}
	return f
}

// robotSource answers with the robot's own name and secret.
type robotSource struct {
	sys          platform.Platform
	path, origin string
	now          func() time.Time
}

// Token reads the robot file and checks its expiry: expired is an error,
// and within robotExpiryWarning it warns, at most once a day.
func (r *robotSource) Token(context.Context) (*Token, error) {
	acct, _, err := readRobotAccount(r.path, r.origin, r.sys)
	if err != nil {
		return nil, err
	}
	tok := &Token{AccessToken: acct.Secret, Expiry: acct.ExpiresAt, Username: acct.Name, Detail: acct.Format}
	if acct.ExpiresAt.IsZero() {
		return tok, nil
	}
	now := r.now()
	date := acct.ExpiresAt.UTC().Format(time.RFC3339)
	if !now.Before(acct.ExpiresAt) {
		return nil, fmt.Errorf("robot account %s (%s) expired on %s; refresh its secret in %s (Robot Accounts, Refresh Secret), export it to %s again, or remove robotAccountPath for this registry from %s",
			acct.Name, r.path, date, acct.Format, r.path, r.origin)
	}
	if left := acct.ExpiresAt.Sub(now); left <= robotExpiryWarning {
		tok.Warnings = append(tok.Warnings, Warning{
			Message: fmt.Sprintf("robot account %s (%s) expires on %s, in %s; refresh its secret in %s and export it to %s again",
				acct.Name, r.path, date, roughDuration(left), acct.Format, r.path),
			OnceADay: "robot\x00" + r.path + "\x00" + acct.Name,
		})
	}
	return tok, nil
}

// roughDuration says how long is left in words a human reads at a glance,
// rounded to the nearest day or hour: 3 days less the seconds a get takes
// is "3 days", not "2 days".
func roughDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= 2*day-day/2/24: // rounds to at least 2 days
		return fmt.Sprintf("%d days", int((d+day/2)/day))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int((d+time.Hour/2)/time.Hour))
	default:
		if m := int(math.Ceil(d.Minutes())); m != 1 {
			return fmt.Sprintf("%d minutes", m)
		}
		return "1 minute"
	}
}
