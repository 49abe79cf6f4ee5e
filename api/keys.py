"""Who is calling: the scope of the presented bearer key (kb.keys), and the admin
routes that create, list and delete scoped keys.

    KB_SERVICE_API_KEY        admin: every knowledge base, ingest, keys
    a scoped key              the knowledge bases it names; ingest and admin if granted
    no key                    read everything, only while no scoped key exists and
                              KB_REQUIRE_KEY_FOR_QUERIES is false (today's default)

A key that may not read a knowledge base gets the same 404 as for one that does
not exist; a key that may read but not ingest or administer gets a 403 that says so.
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPAuthorizationCredentials

from kb import ADMIN, OPEN, Access, AuthError, KeyStore, ScopeError, not_found
from kb.core import Settings

MISSING = "This endpoint needs an API key: send 'Authorization: Bearer <key>'."
WRONG = "The API key is wrong, revoked or malformed: send a key as 'Authorization: Bearer <key>'."


def access_of(
    settings: Settings, keys: KeyStore, credentials: HTTPAuthorizationCredentials | None
) -> Access:
    """The caller's scope, or AuthError (401) when a key is needed and none valid was sent."""
    token = credentials.credentials if credentials and credentials.credentials else None
    service = settings.service_api_key
    if token and service and hmac.compare_digest(token.encode(), service.encode()):
        return ADMIN
    scoped = keys.any()
    if token and scoped and (access := keys.verify(token)) is not None:
        return access
    if scoped or settings.require_key_for_queries:
        raise AuthError(WRONG if token else MISSING)
    return OPEN  # queries are open, as before scoped keys


def require_read(access: Access, name: str) -> None:
    """404 (as for a missing one) unless `access` may read knowledge base `name`."""
    if not access.can_read(name):
        raise not_found(name)


def require_ingest(access: Access, name: str) -> None:
    require_read(access, name)
    if access is OPEN:
        raise AuthError(MISSING)
    if not access.can_ingest(name):
        raise ScopeError(
            f"This key may read {name!r} but not ingest into it: ask an admin for a key "
            "with ingest scope."
        )


def require_admin(access: Access) -> None:
    if access is OPEN:
        raise AuthError(MISSING)
    if not access.admin:
        raise ScopeError(
            "This needs an admin key (KB_SERVICE_API_KEY or a key created with admin scope)."
        )
