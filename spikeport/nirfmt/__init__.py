"""The NIR format, once: constants and conventions (:mod:`.spec`), node and graph builders
(:mod:`.nodes`), the guarded reader of any ``.nir`` file (:mod:`.guard`: structure check, isolated
trial read, known node types, finite values), flat graphs with per-node shapes for any producer's
graph (:mod:`.flat`, :mod:`.shapes`) and the one loader of spikeport-format graphs into a
deployable :class:`~spikeport.core.net.LoihiNet` (:mod:`.load`). export, importer and deploy all go
through here; nothing here imports them."""
