"""Users, groups, the sma client and a signing key in the provider's database (run once
per provider by tests/oidcprovider.py): bob@example.com in sma-operators, carol@example.com
in no mapped group."""

import sys

import django

django.setup()

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from oidc_provider.models import Client, ResponseType, RSAKey  # noqa: E402


def new_key() -> None:
    """A new RSA signing key; the old ones go (the provider signs with the first)."""
    RSAKey.objects.all().delete()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    RSAKey.objects.create(key=private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode())


def main(redirect_uri: str, client_secret: str) -> None:
    operators = Group.objects.create(name="sma-operators")
    others = Group.objects.create(name="others")
    for name, group in (("bob", operators), ("carol", others)):
        user = User.objects.create_user(f"{name}@example.com", f"{name}@example.com",
                                        f"{name}-pw")
        user.groups.add(group)
    code, _ = ResponseType.objects.get_or_create(value="code")
    client = Client.objects.create(name="sma", client_type="confidential", client_id="sma",
                                   client_secret=client_secret, require_consent=False,
                                   reuse_consent=True, jwt_alg="RS256")
    client.redirect_uris = [redirect_uri]
    client.scope = ["openid", "profile", "email"]
    client.save()
    client.response_types.add(code)
    new_key()


if __name__ == "__main__":
    if sys.argv[1] == "rotate":
        new_key()
    elif sys.argv[1] == "ungroup":
        User.objects.get(username=sys.argv[2]).groups.clear()
    elif sys.argv[1] == "regroup":
        User.objects.get(username=sys.argv[2]).groups.add(Group.objects.get(name=sys.argv[3]))
    else:
        main(sys.argv[1], sys.argv[2])
