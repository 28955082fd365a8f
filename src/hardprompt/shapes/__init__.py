"""The "shapes" world: procedural scenes, their captions, and a small image tower trained to match MiniLM."""

from .render import Scene, SceneObject, caption, random_scene, render

__all__ = ["Scene", "SceneObject", "caption", "random_scene", "render"]
