"""Models-from-code entry of the bundle: MLflow runs this file to build the PyFunc at load time,
so no pickled Python object is stored in the registry."""

from mlflow.models import set_model

from model_bundle.pyfunc import ForecastBundle

set_model(ForecastBundle())
