"""The package version, in a module of its own so that every layer can read it without importing the root
package (whose lazy API reaches the top of the pipeline)."""

__version__ = "0.1.0"
