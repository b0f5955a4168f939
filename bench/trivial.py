"""The trivial job both sides of the throughput benchmark run: raw RQ runs this function, the
bench_trivial kind calls it. Kept free of Django so a raw RQ work horse imports nothing else."""


def trivial(n):
    return {"n": n}
