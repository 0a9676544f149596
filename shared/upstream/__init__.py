"""Reaching Azure: credentials per account, and forwarding with streaming passthrough."""
