"""The lab catalog shipped with labctl: one folder per lab under foundation/, professional/, advanced/.

Data, not code: this file only makes the folder a package, so a wheel install carries the catalog
and ``importlib.resources.files("labs")`` finds it (labctl.catalog.load.builtin_root).
"""
