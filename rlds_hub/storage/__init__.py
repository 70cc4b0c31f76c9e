"""On-disk RLDS datasets: episode encoding, shard files and the crash-safe dataset writer."""
