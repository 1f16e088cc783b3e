"""The provider puts each user's Django groups in the ID token's `groups` claim, as
Keycloak's group mapper does."""


def add_groups(id_token, user, **kwargs):
    id_token["groups"] = sorted(user.groups.values_list("name", flat=True))
    id_token["email"] = user.email
    return id_token
