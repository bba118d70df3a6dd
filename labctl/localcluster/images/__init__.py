"""Container images labctl builds itself: static programs packed as OCI archives, no registry."""
