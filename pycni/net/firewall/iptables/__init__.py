"""iptables and ip6tables: ``tool`` runs them, ``save_restore`` writes a table atomically, ``state`` batches."""
