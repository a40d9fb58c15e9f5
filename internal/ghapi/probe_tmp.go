package ghapi

import (
	_ "github.com/google/go-github/v60/github"
	_ "golang.org/x/oauth2"
)
