"""One measurement: samples -> grades -> metrics, the sample store, run records and provenance."""
