"""The labctl controller: thin kopf handlers over idempotent reconcile functions."""
