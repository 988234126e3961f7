"""The cluster partitions: one partition per demand cluster, found at run time."""

import dagster as dg

CLUSTER_PARTITIONS_NAME = "clusters"

cluster_partitions = dg.DynamicPartitionsDefinition(name=CLUSTER_PARTITIONS_NAME)
