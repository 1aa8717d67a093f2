"""Reading tables, encoders and DP discovery of column domains."""

from dpsynth.data.discover import OTHER, map_to_domain, plan_discovery, run_discovery
from dpsynth.data.io import read_table, write_table
from dpsynth.data.ray_table import RayTable
from dpsynth.data.stream import StreamedTable

__all__ = ["OTHER", "RayTable", "StreamedTable", "map_to_domain", "plan_discovery", "read_table",
           "run_discovery", "write_table"]
