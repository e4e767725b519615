"""The Deployment controller (pkg/controller/deployment): `controller.py` is the thin loop;
every other module is pure and named after the upstream file it mirrors."""
