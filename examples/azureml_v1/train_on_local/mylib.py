import numpy as np


def get_alphas():
    # from 0.0 to 1.0 by 0.05
    return np.arange(0.0, 1.0, 0.05)
