"""Secrets stored in the database (WebDAV and qBittorrent passwords), encrypted with a key
derived from SECRET_KEY; keys in SECRET_KEY_FALLBACKS still decrypt after a rotation."""

import base64
import hashlib

from django.conf import settings


def fernet(purpose):
    """A MultiFernet for one purpose (each purpose derives its own keys)."""
    from cryptography.fernet import Fernet, MultiFernet

    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"{purpose}:{key}".encode()).digest())) for key in keys
    ])
