"""A small stand-in for prometheus-config-reloader, for the locally built config-reloader image.

The upstream reloader (github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-
reloader) pulls in client-go and most of Kubernetes' module graph: minutes of compiling on a small
machine for what the prometheus stack asks of it. This one (stdlib Go) takes the same flags the
stack passes (``--watched-dir`` repeated, ``--reload-url``, ``--watch-interval``,
``--listen-address``), hashes the watched directories every second (a ConfigMap volume changes
by swapping its ``..data`` symlink, so polling sees it as surely as inotify would) and at least
every ``--watch-interval``, and POSTs the reload URL when the content changed since the last
successful reload (and once at start). ``/healthz`` answers 200; ``/metrics`` has reload counters
in the upstream reloader's names.
"""

from __future__ import annotations

from pathlib import Path

from labctl.localcluster.images.gobuild import build_program

VERSION = "0.1.0"

SOURCE = """\
// config-reloader: POST a reload URL whenever the files of watched directories change.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

type dirs []string

func (d *dirs) String() string     { return strings.Join(*d, ",") }
func (d *dirs) Set(v string) error { *d = append(*d, v); return nil }

var (
	reloads, failures, lastSuccess atomic.Int64
	configured                   atomic.Int64
)

// hashDirs hashes the names and contents of the regular files (symlinks followed) in each
// directory, skipping dot-names (a ConfigMap volume's ..data and timestamped dirs).
func hashDirs(watched []string) string {
	h := sha256.New()
	for _, dir := range watched {
		entries, err := os.ReadDir(dir)
		if err != nil {
			fmt.Fprintf(h, "missing %s\\n", dir)
			continue
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			path := filepath.Join(dir, name)
			info, err := os.Stat(path)
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			f, err := os.Open(path)
			if err != nil {
				continue
			}
			fmt.Fprintf(h, "%s\\x00", path)
			_, _ = io.Copy(h, f)
			f.Close()
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func reload(client *http.Client, url string) error {
	resp, err := client.Post(url, "text/plain", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

func main() {
	var watched dirs
	flag.Var(&watched, "watched-dir", "directory to watch (repeatable)")
	reloadURL := flag.String("reload-url", "http://127.0.0.1:9090/-/reload", "URL to POST on change")
	interval := flag.Duration("watch-interval", 3*time.Minute, "re-hash at least this often")
	listen := flag.String("listen-address", ":8080", "address for /healthz and /metrics")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.LUTC)

	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK\\n") })
	http.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE reloader_reloads_total counter\\nreloader_reloads_total %d\\n", reloads.Load())
		fmt.Fprintf(w, "# TYPE reloader_reloads_failed_total counter\\n"+
			"reloader_reloads_failed_total %d\\n", failures.Load())
		fmt.Fprintf(w, "# TYPE reloader_last_reload_success_timestamp_seconds gauge\\n"+
			"reloader_last_reload_success_timestamp_seconds %d\\n", lastSuccess.Load())
		fmt.Fprintf(w, "# TYPE reloader_config_apply_operations_total counter\\n"+
			"reloader_config_apply_operations_total %d\\n", configured.Load())
	})
	go func() { log.Fatal(http.ListenAndServe(*listen, nil)) }()

	client := &http.Client{Timeout: 30 * time.Second}
	poll := time.Second
	if *interval > 0 && *interval < poll {
		poll = *interval
	}
	applied := "" // the content Prometheus last reloaded successfully
	log.Printf("watching %v, reloading %s", []string(watched), *reloadURL)
	for {
		current := hashDirs(watched)
		if current != applied {
			configured.Add(1)
			if err := reload(client, *reloadURL); err != nil {
				failures.Add(1)
				log.Printf("reload failed (will retry): %v", err)
			} else {
				reloads.Add(1)
				lastSuccess.Store(time.Now().Unix())
				if applied != "" {
					log.Printf("reloaded after a change")
				}
				applied = current
			}
		}
		time.Sleep(poll)
	}
}
"""


def build() -> Path:
    """The static binary (cached by source hash)."""
    return build_program("config-reloader", {"main.go": SOURCE})
