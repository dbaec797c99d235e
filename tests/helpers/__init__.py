"""Helpers several test modules share (test modules never import from each other)."""
