package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cmdList measures the catalog or a tag list: -count sequential requests for
// the whole list (one big page), then a walk through the list in pages of
// -page following the Link headers, as clients paginate.
func cmdList(kind string, args []string) error {
	var c common
	fs := newFlags(kind, &c)
	rawURL := fs.String("url", "http://127.0.0.1:5000", "registry base URL")
	repo := fs.String("repo", "seed/tags", "repository (tags only)")
	n := fs.Int("n", 10000, "page size of the whole-list requests (0: no n parameter)")
	count := fs.Int("count", 20, "whole-list requests")
	page := fs.Int("page", 100, "page size of the paginated walk (0: no walk)")
	walks := fs.Int("walks", 1, "paginated walks")
	expectN := fs.Int("expect", 0, "fail unless a whole-list request returns this many entries")
	fs.Parse(args)
	host, err := hostOf(*rawURL)
	if err != nil {
		return err
	}
	path := "/v2/_catalog"
	if kind == "tags" {
		path = "/v2/" + *repo + "/tags/list"
	}
	cn := newConn(host)
	defer cn.close()

	get := func(target string) (entries int, next string, d time.Duration, err error) {
		start := time.Now()
		resp, err := cn.do(http.MethodGet, target, nil, nil, true)
		d = time.Since(start)
		if err != nil {
			return 0, "", d, err
		}
		if err := expect(resp, http.StatusOK); err != nil {
			return 0, "", d, fmt.Errorf("GET %s: %w", target, err)
		}
		var body struct {
			Repositories []string `json:"repositories"`
			Tags         []string `json:"tags"`
		}
		if err := json.Unmarshal(resp.Body, &body); err != nil {
			return 0, "", d, fmt.Errorf("GET %s: %w", target, err)
		}
		if link := resp.Header.Get("Link"); link != "" {
			if i, j := strings.Index(link, "<"), strings.Index(link, ">"); i >= 0 && j > i {
				if next, err = targetOf(link[i+1 : j]); err != nil {
					return 0, "", d, err
				}
			}
		}
		return len(body.Repositories) + len(body.Tags), next, d, nil
	}

	whole := path
	if *n > 0 {
		whole += "?n=" + strconv.Itoa(*n)
	}
	var full hist
	entries := 0
	for range *count {
		got, _, d, err := get(whole)
		if err != nil {
			return err
		}
		if *expectN > 0 && got != *expectN {
			return fmt.Errorf("GET %s returned %d entries, want %d", whole, got, *expectN)
		}
		entries = got
		full.record(d)
	}
	v := map[string]any{"entries": entries, "count": *count}
	latencyValues(v, "", &full)
	human := fmt.Sprintf("whole list (%d entries): p50 %.2f ms, p99 %.2f ms over %d requests",
		entries, ms(full.quantile(0.5)), ms(full.quantile(0.99)), *count)

	if *page > 0 && *walks > 0 {
		var pages hist
		var walkTimes []float64
		walked := 0
		for range *walks {
			start := time.Now()
			walked = 0
			target := path + "?n=" + strconv.Itoa(*page)
			for target != "" {
				got, next, d, err := get(target)
				if err != nil {
					return err
				}
				pages.record(d)
				walked += got
				if got == 0 {
					break
				}
				target = next
			}
			walkTimes = append(walkTimes, time.Since(start).Seconds())
		}
		latencyValues(v, "page_", &pages)
		v["page_size"] = *page
		v["pages"] = pages.n / uint64(*walks)
		v["walk_entries"] = walked
		v["walk_s"] = round3(median(walkTimes))
		human += fmt.Sprintf("; pages of %d: p50 %.2f ms, p99 %.2f ms, whole walk %.2f s (%d entries)",
			*page, ms(pages.quantile(0.5)), ms(pages.quantile(0.99)), median(walkTimes), walked)
	}
	return c.emit(kind, v, human)
}
