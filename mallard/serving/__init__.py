"""Model serving inside a build's environment: `python -m mallard.serving.replica` serves one
trained model over a lean HTTP/1.1 protocol on loopback (see `mallard.serving.replica`).

The data-plane agent starts replicas and routes predictions to them; users do not run this
directly. Only the standard library, pandas, numpy and pyarrow are used here, since this code
runs in every model's environment.
"""
