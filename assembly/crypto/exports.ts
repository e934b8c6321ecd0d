// crypto kernels are exported from here
