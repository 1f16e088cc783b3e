"""A small Django project running django-oidc-provider: the real OpenID provider the OIDC
sign-in tests sign in with (tests/oidcprovider.py starts it)."""
