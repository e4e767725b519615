"""The HorizontalPodAutoscaler controller (pkg/controller/podautoscaler): `controller.py` is the
thin loop; every other module is pure and named after the upstream file it mirrors."""
