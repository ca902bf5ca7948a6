"""Feature engineering, Dagster-free.

grid_index     station -> nearest grid cell (3-D unit-vector cKDTree), distance, k x k window,
               exclusions (outside the grid, too far), hashes that decide when to rebuild
neighbourhood  one numpy gather of every station's window for every variable -> centre, mean,
               min, max, std and west-east / south-north gradients
"""
