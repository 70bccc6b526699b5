"""The two jobs: ``evaluate`` (measure one model) and ``run`` (base -> adaptation -> comparison)."""
