"""Restoring your own images: `restorer` (load a system, restore and write one image), `inference` (basicsr restore)."""
