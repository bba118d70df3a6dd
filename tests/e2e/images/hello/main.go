// hello is the e2e test's workload on the real node: GET / answers the pod's hostname, and
// GET /lookup?host=NAME the addresses NAME resolves to from inside the pod (cluster DNS).
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	hostname, err := os.Hostname()
	if err != nil {
		log.Fatal(err)
	}
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, hostname)
	})
	http.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) {
		addrs, err := net.LookupHost(r.URL.Query().Get("host"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, strings.Join(addrs, ","))
	})
	log.Printf("hello on %s as %s", addr, hostname)
	log.Fatal(http.ListenAndServe(addr, nil))
}
