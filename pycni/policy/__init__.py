"""Kubernetes NetworkPolicy: the object model, validation, a pure evaluator and compiler, and the enforcer."""
