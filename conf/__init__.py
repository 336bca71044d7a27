"""Default configuration shipped with feedlake (installed as ``feedlake.conf``)."""
