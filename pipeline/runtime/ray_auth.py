"""Ray clusters with token authentication (``RAY_AUTH_MODE=token``, Ray 2.52 and later).

Ray's clients (``ray.init``, the job-server client) send the token only when this process is in
token mode, and read it from ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` names, or
``~/.ray/auth_token``. ``--ray-token-file PATH`` selects a file; a token given by environment
turns token mode on by itself. The token never goes into a job's runtime environment or metadata:
a submitted job's driver runs on the head node, which has the cluster's own token.
"""

from __future__ import annotations

import os

from ..errors import PipelineError

HINT = (
    "pass --ray-token-file PATH with the cluster's token (`ray get-auth-token` on the head node prints it) "
    "or set RAY_AUTH_TOKEN"
)


class RayAuthError(PipelineError, RuntimeError):
    """The cluster refused us, or the token named cannot be used; the message says what to pass."""


def use_token(token_file: str | None) -> None:
    """Set this process up to authenticate to a cluster, before any Ray client is made."""
    if token_file:
        path = os.path.abspath(token_file)
        try:
            with open(path, encoding="utf-8") as fh:
                empty = not fh.read(4096).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise RayAuthError(f"--ray-token-file {token_file}: {getattr(exc, 'strerror', None) or exc}") from None
        if empty:
            raise RayAuthError(f"--ray-token-file {token_file}: the file is empty")
        os.environ.pop("RAY_AUTH_TOKEN", None)  # Ray prefers it to the file: the file named here wins
        os.environ["RAY_AUTH_TOKEN_PATH"] = path
        os.environ["RAY_AUTH_MODE"] = "token"
    elif "RAY_AUTH_MODE" not in os.environ and (
        os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    ):
        os.environ["RAY_AUTH_MODE"] = "token"


def quiet_local_default(verbose: bool) -> None:
    """A Ray started here uses a token of its own unless ``RAY_AUTH_MODE`` says otherwise (Ray's
    default for a local Ray since 2.59); Ray announces that on every start, shown with ``verbose``."""
    import logging

    if not verbose:
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def refused(where: str, exc: BaseException) -> RayAuthError:
    """The error for a request the cluster refused for want of the right token."""
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return RayAuthError(f"{where} requires token authentication ({reason}): {HINT}")
