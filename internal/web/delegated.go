package web

import (
	"context"
	"net/http"

	"github.com/mailgate/mailgate/internal/store"
)

func (s *Server) delegatedLogin(ctx context.Context, login, pass string, a store.Account, exists bool) (store.Account, error) {
	return a, errBadLogin
}

func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request)    { http.NotFound(w, r) }
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
func (s *Server) linkPage(w http.ResponseWriter, r *http.Request)     { http.NotFound(w, r) }
func (s *Server) linkPost(w http.ResponseWriter, r *http.Request)     { http.NotFound(w, r) }
