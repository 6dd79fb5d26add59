package credhelper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/lockfile"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/atomicfile"
)

// Login is a static username and secret saved by `docker login`, for robot
// accounts that are not linked to a service account.
type Login struct {
	Username string `json:"username"`
	Secret   string `json:"secret"`
}

type loginsFile struct {
	Version int              `json:"version"`
	Logins  map[string]Login `json:"logins"`
}

// loginStore keeps static logins in one 0600 file, changed under a sidecar
// lock so that concurrent `docker login` calls do not lose each other.
type loginStore struct {
	path string
	sys  platform.Platform
	// lockWait bounds the wait for a concurrent docker login or logout.
	lockWait time.Duration
}

// load reads the stored logins the one hardened way, and like ssh refuses
// them when another user could have written the file or its directory:
// whoever can write it decides which login docker sends.
func (s loginStore) load() (map[string]Login, error) {
	data, fi, err := safefile.ReadFile(s.path, s.sys)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Login{}, nil
	}
	if err != nil {
		return nil, problem.Wrap(err, fmt.Sprintf("read stored logins %s: %s", s.path, safefile.DescribeFileError(err)), fixOf(err, "remove it and run docker login again"))
	}
	if err := safefile.CheckTrusted(s.path, s.sys); err != nil {
		return nil, untrustedFile("stored logins", s.path, err, "another user could have planted a login")
	}
	// Robot secrets that others can only read: a copy or restore that
	// loosened the mode is tightened on sight, together with the directory.
	if fi.Mode().Perm()&0o077 != 0 && s.sys.UnixPermissions() {
		_ = os.Chmod(s.path, 0o600)
		_ = ensureDir(filepath.Dir(s.path), s.sys)
	}
	var f loginsFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("stored logins %s are corrupt; delete the file and run docker login again", s.path)
	}
	if f.Logins == nil {
		f.Logins = map[string]Login{}
	}
	return f.Logins, nil
}

func (s loginStore) get(host string) (Login, bool, error) {
	logins, err := s.load()
	if err != nil {
		return Login{}, false, err
	}
	l, ok := logins[host]
	return l, ok, nil
}

// update applies change to the stored logins under the lock and writes the
// result if change reports a modification.
func (s loginStore) update(change func(map[string]Login) bool) error {
	dir := filepath.Dir(s.path)
	if err := ensureDir(dir, s.sys); err != nil {
		return fmt.Errorf("create config dir %s: %w", dir, err)
	}
	unlock, err := lockfile.Lock(context.Background(), s.path+".lock", s.lockWait)
	if err != nil {
		return err
	}
	defer unlock()
	logins, err := s.load()
	if err != nil {
		return err
	}
	if !change(logins) {
		return nil
	}
	data, _ := json.MarshalIndent(loginsFile{Version: 1, Logins: logins}, "", "  ")
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write stored logins %s: %w", s.path, err)
	}
	return nil
}
