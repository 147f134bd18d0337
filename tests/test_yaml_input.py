"""The shared rules for a user's YAML configs (gta.yaml_input): every reader refuses unknown keys the same way."""
import pytest

from gta.errors import GtaInputError
from gta.io.manifest import load_manifest
from gta.train.config import TrainConfig
from gta.yaml_input import refuse_unknown


def test_unknown_keys_are_named_with_the_known_ones():
    refuse_unknown({"a": 1}, {"a", "b"})  # nothing unknown: no error
    with pytest.raises(GtaInputError, match=r"unknown model key\(s\) \['c', 'z'\] in 'x'") as e:
        refuse_unknown({"z": 1, "a": 2, "c": 3}, ("b", "a"), "model key(s)", "cfg.yaml", where=" in 'x'")
    assert e.value.hint == "known keys: ['a', 'b']" and "cfg.yaml" in e.value.one_line()
    with pytest.raises(GtaInputError) as e:
        refuse_unknown({"q": 1}, {"a"}, hint="keys: a (true/false)")
    assert e.value.hint == "keys: a (true/false)"


def test_each_config_reader_lists_what_it_knows(tmp_path):
    with pytest.raises(GtaInputError, match=r"unknown training config key\(s\) \['epochs'\]") as e:
        TrainConfig.from_dict({"epochs": 3})
    assert "max_epochs" in e.value.hint
    with pytest.raises(GtaInputError, match=r"unknown model config key\(s\) \['layers'\]") as e:
        TrainConfig.from_dict({"model": {"layers": 3}})
    assert "llm_layers" in e.value.hint
    path = tmp_path / "dataset.yaml"
    path.write_text("genome: g.fa\ngenes: g.gtf\nsplits: {val_chrom: [chr1]}\n")
    with pytest.raises(GtaInputError, match=r"unknown key\(s\) \['val_chrom'\] in 'splits'") as e:
        load_manifest(path)
    assert "val_chroms" in e.value.hint
