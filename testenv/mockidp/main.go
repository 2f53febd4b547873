// mockidp is an OpenID Connect provider for Berth's tests, on a loopback
// address: authorization code flow with PKCE (S256 only), RS256 ID tokens
// with a fresh key per run, discovery and JWKS. Every authorization request
// logs in the one user given by the flags at once (no login page), so a
// test drives the whole flow with plain HTTP requests. The first line on
// stdout is "ISSUER=<url>".
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/oauth2-proxy/mockoidc"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	clientID := flag.String("client-id", "berth", "the client's id")
	secret := flag.String("client-secret", "berth-secret", "the client's secret (client_secret_post)")
	sub := flag.String("sub", "alice", "the user's subject")
	email := flag.String("email", "alice@example.com", "the user's email claim")
	groups := flag.String("groups", "", "the user's groups claim, comma-separated (sent with scope groups)")
	flag.Parse()

	m, err := mockoidc.NewServer(nil)
	if err != nil {
		log.Fatal(err)
	}
	m.ClientID, m.ClientSecret = *clientID, *secret
	m.CodeChallengeMethodsSupported = []string{"S256"}
	var groupList []string
	if *groups != "" {
		groupList = strings.Split(*groups, ",")
	}
	user := &mockoidc.MockUser{
		Subject:           *sub,
		Email:             *email,
		EmailVerified:     true,
		PreferredUsername: *sub,
		Groups:            groupList,
	}
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.AuthorizationEndpoint {
				m.QueueUser(user)
			}
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ISSUER=%s\n", m.Issuer())
	_ = os.Stdout.Sync()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	_ = m.Shutdown()
}
