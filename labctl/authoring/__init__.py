"""For lab authors: prove a lab honest on a cluster (:mod:`.labtest`: the reference solution
passes, each planted mistake fails exactly the checks it names, the README works as written,
followed by :mod:`.follow`)."""
