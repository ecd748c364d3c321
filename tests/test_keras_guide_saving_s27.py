"""keras.io's "Save, serialize, and export models" (guides/serialization_and_saving.py,
Keras 3 version; session 27), written once as a function of its ``keras`` module and run
with ``import keras`` and with ``from wsekern import nn as keras``: whole-model .keras round
trips; a registered custom layer (whose ``get_config`` leaves out its name) and function
found by the registry, by ``custom_objects`` and by ``custom_object_scope``; clone_model,
get_config/from_config and to_json of a layer, a Sequential and a Functional;
``saving.serialize_keras_object`` / ``deserialize_keras_object``; get_weights/set_weights
between layers, a functional and a subclassed model, a model with a Dropout more;
``save_weights``/``load_weights``; a nested layer's variables; layers taken out of a loaded
model into a Sequential; ``layers.serialize``/``deserialize`` of a registered layer holding
another layer, and a custom layer of layers through Model.get_config/from_config. The
downloads are none; the data are the guide's own random arrays (seeded)."""
import os

import numpy as np
import pytest

from wsekern import nn


def _program(keras, workdir):
    """The guide's code, in order, with what it prints or asserts recorded in ``seen``."""
    ops = keras.ops
    here = os.getcwd()
    os.chdir(workdir)
    seen = {}
    try:
        def get_model():
            inputs = keras.Input(shape=(32,))
            outputs = keras.layers.Dense(1)(inputs)
            model = keras.Model(inputs, outputs)
            model.compile(optimizer=keras.optimizers.Adam(), loss="mean_squared_error")
            return model

        model = get_model()
        test_input = np.random.random((128, 32))
        test_target = np.random.random((128, 1))
        model.fit(test_input, test_target, verbose=0)
        model.save("my_model.keras")
        reconstructed_model = keras.models.load_model("my_model.keras")
        np.testing.assert_allclose(model.predict(test_input, verbose=0),
                                   reconstructed_model.predict(test_input, verbose=0))
        seen["whole_model"] = (model.predict(test_input, verbose=0), test_input)

        keras.saving.get_custom_objects().clear()

        @keras.saving.register_keras_serializable(package="MyLayers")
        class CustomLayer(keras.layers.Layer):
            def __init__(self, factor):
                super().__init__()
                self.factor = factor

            def call(self, x):
                return x * self.factor

            def get_config(self):
                return {"factor": self.factor}

        @keras.saving.register_keras_serializable(package="my_package", name="custom_fn")
        def custom_fn(x):
            return x**2

        def get_model():                                          # noqa: F811 - the guide's
            inputs = keras.Input(shape=(4,))
            mid = CustomLayer(0.5)(inputs)
            outputs = keras.layers.Dense(1, activation=custom_fn)(mid)
            model = keras.Model(inputs, outputs)
            model.compile(optimizer="rmsprop", loss="mean_squared_error")
            return model

        def train_model(model):
            input = np.random.random((4, 4))
            target = np.random.random((4, 1))
            model.fit(input, target, verbose=0)
            return model

        test_input = np.random.random((4, 4))
        custom_objects = {"CustomLayer": CustomLayer, "custom_fn": custom_fn}
        for how in ("registered", "custom_objects", "scope"):
            model = train_model(get_model())
            model.save("custom_model.keras")
            if how == "registered":
                reconstructed_model = keras.models.load_model("custom_model.keras")
            elif how == "custom_objects":
                reconstructed_model = keras.models.load_model("custom_model.keras",
                                                              custom_objects=custom_objects)
            else:
                with keras.saving.custom_object_scope(custom_objects):
                    reconstructed_model = keras.models.load_model("custom_model.keras")
            np.testing.assert_allclose(model.predict(test_input, verbose=0),
                                       reconstructed_model.predict(test_input, verbose=0))
            seen[f"custom_{how}"] = [type(l).__name__ for l in reconstructed_model.layers]

        new_model = keras.models.clone_model(model)
        seen["clone"] = [type(l).__name__ for l in new_model.layers]
        layer = keras.layers.Dense(3, activation="relu")
        layer_config = layer.get_config()
        seen["dense_config"] = {k: layer_config[k] for k in ("name", "units", "activation",
                                                             "use_bias", "trainable")}
        new_layer = keras.layers.Dense.from_config(layer_config)
        seen["dense_again"] = (type(new_layer).__name__, new_layer.units)
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(1)])
        config = model.get_config()
        new_model = keras.Sequential.from_config(config)
        inputs = keras.Input((32,))
        outputs = keras.layers.Dense(1)(inputs)
        model = keras.Model(inputs, outputs)
        config = model.get_config()
        new_model = keras.Model.from_config(config)
        seen["functional_again"] = new_model.count_params()
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(1)])
        json_config = model.to_json()
        new_model = keras.models.model_from_json(json_config)
        seen["json_again"] = new_model.count_params()

        my_reg = keras.regularizers.L1(0.005)
        config = keras.saving.serialize_keras_object(my_reg)
        seen["l1_config"] = config
        new_reg = keras.saving.deserialize_keras_object(config)
        seen["l1_again"] = (type(new_reg).__name__, float(new_reg.l1))

        def create_layer():
            layer = keras.layers.Dense(64, activation="relu", name="dense_2")
            layer.build((None, 784))
            return layer

        layer_1 = create_layer()
        layer_2 = create_layer()
        layer_2.set_weights(layer_1.get_weights())
        inputs = keras.Input(shape=(784,), name="digits")
        x = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
        x = keras.layers.Dense(64, activation="relu", name="dense_2")(x)
        outputs = keras.layers.Dense(10, name="predictions")(x)
        functional_model = keras.Model(inputs=inputs, outputs=outputs, name="3_layer_mlp")

        class SubclassedModel(keras.Model):
            def __init__(self, output_dim, name=None):
                super().__init__(name=name)
                self.output_dim = output_dim
                self.dense_1 = keras.layers.Dense(64, activation="relu", name="dense_1")
                self.dense_2 = keras.layers.Dense(64, activation="relu", name="dense_2")
                self.dense_3 = keras.layers.Dense(output_dim, name="predictions")

            def call(self, inputs):
                x = self.dense_1(inputs)
                x = self.dense_2(x)
                x = self.dense_3(x)
                return x

            def get_config(self):
                return {"output_dim": self.output_dim, "name": self.name}

        subclassed_model = SubclassedModel(10)
        subclassed_model(np.ones((1, 784)))
        subclassed_model.set_weights(functional_model.get_weights())
        assert len(functional_model.weights) == len(subclassed_model.weights)
        for a, b in zip(functional_model.weights, subclassed_model.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy())
        seen["subclassed_weights"] = [tuple(w.shape) for w in subclassed_model.weights]

        inputs = keras.Input(shape=(784,), name="digits")
        x = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
        x = keras.layers.Dense(64, activation="relu", name="dense_2")(x)
        x = keras.layers.Dropout(0.5)(x)
        outputs = keras.layers.Dense(10, name="predictions")(x)
        functional_model_with_dropout = keras.Model(inputs=inputs, outputs=outputs,
                                                    name="3_layer_mlp")
        functional_model_with_dropout.set_weights(functional_model.get_weights())

        sequential_model = keras.Sequential([
            keras.Input(shape=(784,), name="digits"),
            keras.layers.Dense(64, activation="relu", name="dense_1"),
            keras.layers.Dense(64, activation="relu", name="dense_2"),
            keras.layers.Dense(10, name="predictions"),
        ])
        before = [w.copy() for w in sequential_model.get_weights()]
        sequential_model.save_weights("my_model.weights.h5")
        sequential_model.set_weights([np.zeros_like(w) for w in before])
        sequential_model.load_weights("my_model.weights.h5")
        for a, b in zip(before, sequential_model.get_weights()):
            np.testing.assert_array_equal(a, b)

        class NestedDenseLayer(keras.layers.Layer):
            def __init__(self, units, name=None):
                super().__init__(name=name)
                self.dense_1 = keras.layers.Dense(units, name="dense_1")
                self.dense_2 = keras.layers.Dense(units, name="dense_2")

            def call(self, inputs):
                return self.dense_2(self.dense_1(inputs))

        nested_model = keras.Sequential([keras.Input((784,)), NestedDenseLayer(10, "nested")])
        variable_names = [v.name for v in nested_model.weights]
        paths = [v.path for v in nested_model.weights]
        nested_model.get_layer("nested").dense_1.trainable = False
        variable_names_2 = [v.name for v in nested_model.weights]
        paths_2 = [v.path for v in nested_model.weights]
        # wsekern.nn names a layer's variable "<layer>/<weight>" (tf.keras's name), Keras 3
        # "<weight>": the part after the last "/" is Keras 3's name (left: report s27/nn27)
        seen["nested_variables"] = ([n.rsplit("/", 1)[-1] for n in variable_names],
                                    [n.rsplit("/", 1)[-1] for n in variable_names_2],
                                    variable_names != variable_names_2, paths, paths_2)

        def create_functional_model():
            inputs = keras.Input(shape=(784,), name="digits")
            x = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
            x = keras.layers.Dense(64, activation="relu", name="dense_2")(x)
            outputs = keras.layers.Dense(10, name="predictions")(x)
            return keras.Model(inputs=inputs, outputs=outputs, name="3_layer_mlp")

        functional_model = create_functional_model()
        functional_model.save_weights("pretrained.weights.h5")
        pretrained_model = create_functional_model()
        pretrained_model.load_weights("pretrained.weights.h5")
        for a, b in zip(functional_model.get_weights(), pretrained_model.get_weights()):
            np.testing.assert_array_equal(a, b)
        extracted_layers = pretrained_model.layers[:-1]
        extracted_layers.append(keras.layers.Dense(5, name="dense_3"))
        model = keras.Sequential(extracted_layers)
        seen["extracted"] = ([(l.name, l.count_params()) for l in model.layers],
                             model.count_params(), tuple(model.output_shape))

        @keras.saving.register_keras_serializable(package="MyLayers", name="KernelMult")
        class MyDense(keras.layers.Layer):
            def __init__(self, units, *, kernel_regularizer=None, kernel_initializer=None,
                         nested_model=None, **kwargs):
                super().__init__(**kwargs)
                self.hidden_units = units
                self.kernel_regularizer = kernel_regularizer
                self.kernel_initializer = kernel_initializer
                self.nested_model = nested_model

            def get_config(self):
                config = super().get_config()
                config.update({"units": self.hidden_units,
                               "kernel_regularizer": self.kernel_regularizer,
                               "kernel_initializer": self.kernel_initializer,
                               "nested_model": self.nested_model})
                return config

            def build(self, input_shape):
                input_units = input_shape[-1]
                self.kernel = self.add_weight(name="kernel",
                                              shape=(input_units, self.hidden_units),
                                              regularizer=self.kernel_regularizer,
                                              initializer=self.kernel_initializer)

            def call(self, inputs):
                return ops.matmul(inputs, self.kernel)

        layer = MyDense(units=16, kernel_regularizer="l1", kernel_initializer="ones")
        layer3 = MyDense(units=64, nested_model=layer)
        config = keras.layers.serialize(layer3)
        seen["mydense_config"] = config
        new_layer = keras.layers.deserialize(config)
        seen["mydense_again"] = (type(new_layer).__name__, new_layer.name,
                                 new_layer.hidden_units)

        @keras.saving.register_keras_serializable(package="ComplexModels")
        class CustomModel(keras.layers.Layer):
            def __init__(self, first_layer, second_layer=None, **kwargs):
                super().__init__(**kwargs)
                self.first_layer = first_layer
                if second_layer is not None:
                    self.second_layer = second_layer
                else:
                    self.second_layer = keras.layers.Dense(8)

            def get_config(self):
                config = super().get_config()
                config.update({"first_layer": self.first_layer,
                               "second_layer": self.second_layer})
                return config

            @classmethod
            def from_config(cls, config):
                config["first_layer"] = keras.layers.deserialize(config["first_layer"])
                config["second_layer"] = keras.layers.deserialize(config["second_layer"])
                return cls(**config)

            def call(self, inputs):
                return self.first_layer(self.second_layer(inputs))

        inputs = keras.Input((32,))
        outputs = CustomModel(first_layer=layer)(inputs)
        model = keras.Model(inputs, outputs)
        config = model.get_config()
        new_model = keras.Model.from_config(config)
        inner = new_model.layers[1]
        seen["custom_model_again"] = (type(inner).__name__, type(inner.first_layer).__name__,
                                      type(inner.second_layer).__name__,
                                      new_model.count_params(),
                                      tuple(new_model(np.ones((2, 32), "float32")).shape))
        layer = MyDense(units=16,
                        kernel_regularizer=keras.regularizers.L1L2(l1=1e-5, l2=1e-4),
                        kernel_initializer="ones")
        seen["l1l2_in_config"] = keras.layers.serialize(layer)["config"]["kernel_regularizer"]
    finally:
        keras.saving.get_custom_objects().clear()
        os.chdir(here)
    return seen


def _shape_of_serialized(config):
    """What both libraries write alike of a serialized object: its module, class and
    registered names, and the same of the objects nested in its config (but the dtype:
    Keras writes its policy, {"class_name": "DTypePolicy", ...}, ours the dtype's name)."""
    out = {k: config[k] for k in ("module", "class_name", "registered_name")}
    for k, v in config["config"].items():
        if isinstance(v, dict) and "class_name" in v and k != "dtype":
            out[k] = _shape_of_serialized(v)
    return out


def test_saving_guide_runs_verbatim(tmp_path):
    nn.utils.set_random_seed(0)
    np.random.seed(0)
    with pytest.warns(UserWarning, match="layer 'custom_layer(_[0-9]+)?' is of the custom "
                      "class 'MyLayers>CustomLayer': wsekern.nn writes Keras's format for "
                      "Keras's own layers only"):
        seen = _program(nn, tmp_path)
    assert seen["custom_registered"] == ["InputLayer", "CustomLayer", "Dense"]
    assert seen["mydense_again"] == ("MyDense", "my_dense_1", 64)


def test_saving_guide_as_keras(keras, tmp_path):
    """Every recorded name, class, shape and parameter count equals Keras's; a serialized
    object's module/class/registered names too (the configs' other keys are each library's:
    Keras writes its dtype policy and initializers as dicts, ours as names); numbers within
    float32 rounding (rtol 1e-6: Keras stores L1's 0.005 as float32)."""
    out = {}
    for K, tag in ((keras, "k"), (nn, "n")):
        K.utils.clear_session(free_memory=False)
        K.utils.set_random_seed(0)
        (tmp_path / tag).mkdir()
        out[tag] = _program(K, tmp_path / tag)
    theirs, ours = out["k"], out["n"]
    for key in ("custom_registered", "custom_custom_objects", "custom_scope", "clone",
                "dense_config", "dense_again", "functional_again", "json_again",
                "subclassed_weights", "nested_variables", "extracted", "mydense_again",
                "custom_model_again"):
        assert ours[key] == theirs[key], key
    assert _shape_of_serialized(ours["mydense_config"]) == \
        _shape_of_serialized(theirs["mydense_config"])
    assert ours["mydense_config"]["config"]["units"] == 64
    for key in ("l1_config", "l1l2_in_config"):
        assert {k: ours[key][k] for k in ("module", "class_name", "registered_name")} == \
            {k: theirs[key][k] for k in ("module", "class_name", "registered_name")}, key
        assert sorted(ours[key]["config"]) == sorted(theirs[key]["config"]), key
        for name, value in theirs[key]["config"].items():
            np.testing.assert_allclose(ours[key]["config"][name], value, rtol=1e-6)
    assert ours["l1_again"][0] == theirs["l1_again"][0] == "L1"
    np.testing.assert_allclose(ours["l1_again"][1], theirs["l1_again"][1], rtol=1e-6)


def test_each_library_reads_the_others_guide_model(keras, tmp_path):
    """The guide's first model (Dense(1) over 32 inputs, Adam, trained one epoch): the
    .keras file Keras wrote loads in wsekern.nn and the one wsekern.nn wrote loads in Keras,
    each predicting what the writer predicts (rtol 1e-5: a 32-term float32 dot product
    summed in another order)."""
    out = {}
    for K, tag in ((keras, "k"), (nn, "n")):
        K.utils.set_random_seed(0)
        (tmp_path / tag).mkdir()
        out[tag] = _program(K, tmp_path / tag)["whole_model"]
    for writer, reader in (("k", nn), ("n", keras)):
        predicted, x = out[writer]
        loaded = reader.models.load_model(tmp_path / writer / "my_model.keras")
        np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)), predicted,
                                   rtol=1e-5, atol=1e-6)
