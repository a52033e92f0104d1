"""Push a checkpoint directory to the Hugging Face Hub.

    python recipes/push.py checkpoint=checkpoints/gnn_nc repo_id=<org>/gnn_nc
    python recipes/push.py checkpoint=gnn_nc repo_id=<org>/gnn_nc private=true token=hf_...

``checkpoint`` is a directory, a registered model name (its shipped ``checkpoints/<name>``) or
an ``hf-hub:`` id. Prints the commit URL as the last line of output; load the result anywhere
with ``zoo.load("hf-hub:<org>/<name>")``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console

from zoo.core.checkpoint import resolve
from zoo.core.hub import push


@hydra.main(config_path="configs", config_name="push", version_base="1.3")
def main(cfg: DictConfig) -> str:
    """Resolve ``cfg.checkpoint`` and push it to ``cfg.repo_id``; returns the commit URL.

    A bad checkpoint reference or an unreachable Hub exits 1 with one ``error:`` line.
    """
    try:
        directory = resolve(str(cfg.checkpoint))
        url = push(
            directory,
            str(cfg.repo_id),
            token=cfg.token,
            private=bool(cfg.private),
            commit_message=cfg.commit_message,
            endpoint=cfg.endpoint,
            revision=cfg.revision,
            timeout=cfg.timeout,
        )
    except (OSError, ValueError) as e:  # HubUnreachableError is a ConnectionError (OSError)
        raise SystemExit(f"error: {e}") from None
    Console(stderr=True).print(f"[green]pushed[/] {directory} [green]to[/] {cfg.repo_id}")
    print(url)
    return url


if __name__ == "__main__":
    main()
