"""lava-dl netx HDF5 (``model.net``): the format's conventions and arithmetic, once (see ``rules``)."""
