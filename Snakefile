# The workflow is workflow/Snakefile. Included here so that a mistake in the config stops the run
# with one line naming the key (and the file that sets it) rather than the schema and the whole
# config that snakemake.utils.validate's message carries (ocdec.config_errors): Snakemake raises a
# WorkflowError whose context is jsonschema's ValidationError, or, where config/config.yaml itself
# does not parse, the YAML error. (A config file given with --configfile is read before this
# file, so its YAML errors stay Snakemake's.)
import sys
from pathlib import Path

import yaml
from jsonschema.exceptions import ValidationError
from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from ocdec.config_errors import ConfigSources, config_error_line, yaml_error_line

try:
    workflow.include("workflow/Snakefile")
except WorkflowError as err:
    context = err.__context__
    if isinstance(context, ValidationError) and "config file" in str(err):
        sources = ConfigSources(
            workflow.config_settings.config,
            workflow.configfiles,
            workflow.overwrite_configfiles,
        )
        sys.exit(f"Error: {config_error_line(context, sources)}")
    if isinstance(context, yaml.YAMLError) and str(err).startswith("Config file"):
        sys.exit(f"Error: {yaml_error_line(context, workflow.configfiles[-1])}")
    raise


workflow.default_target = "all"
