"""Imported only by the multiprocessing forkserver (``set_forkserver_preload``):
the forkserver exits when the ``serve`` process that started it is gone."""

from dlp_gateway.relay.lifeline import watch_parent

watch_parent()
