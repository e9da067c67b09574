package main

import (
	"fmt"
	"time"

	"github.com/berth-registry/berth/bench/seed"
)

func cmdSeed(args []string) error {
	var c common
	fs := newFlags("seed", &c)
	root := fs.String("root", "", "registry storage root (storage.filesystem.rootdirectory)")
	repos := fs.Int("repos", 10000, "small repositories, one tag each")
	tags := fs.Int("tags", 10000, "tags in the tag repository")
	tagRepo := fs.String("tag-repo", seed.DefaultTagRepo, "the repository holding the many tags")
	workers := fs.Int("workers", 8, "files written in parallel")
	fs.Parse(args)
	start := time.Now()
	res, err := seed.Write(seed.Options{Root: *root, Repos: *repos, Tags: *tags, TagRepo: *tagRepo, Workers: *workers})
	if err != nil {
		return err
	}
	d := time.Since(start)
	return c.emit("seed", map[string]any{
		"seconds": round3(d.Seconds()), "repos": res.Repos, "tags": res.Tags,
		"manifests": res.Manifests, "files": res.Files, "tag_repo": res.TagRepo,
	}, fmt.Sprintf("wrote %d repositories, %d tags in %s, %d files in %.1f s", res.Repos, res.Tags, res.TagRepo, res.Files, d.Seconds()))
}
