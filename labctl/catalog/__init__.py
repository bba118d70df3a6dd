"""The lab catalog: the lab format (model), loading lab folders, validating and publishing them."""
