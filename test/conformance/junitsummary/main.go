// Command junitsummary prints a pass/fail/skip summary of the JUnit report
// written by the OCI conformance suite, with the name and message of every
// failed check. It exits 1 when a check failed and 2 when the report cannot
// be read.
package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"
)

type report struct {
	Suites []suite `xml:"testsuite"`
}

type suite struct {
	Cases []testCase `xml:"testcase"`
}

type testCase struct {
	Name    string  `xml:"name,attr"`
	Status  string  `xml:"status,attr"`
	Failure *detail `xml:"failure"`
	Error   *detail `xml:"error"`
	Skipped *detail `xml:"skipped"`
}

type detail struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: junitsummary junit.xml")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "junitsummary:", err)
		os.Exit(2)
	}
	var r report
	if err := xml.Unmarshal(data, &r); err != nil {
		fmt.Fprintln(os.Stderr, "junitsummary:", err)
		os.Exit(2)
	}

	var passed, failed, skipped int
	var failures []testCase
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			// Ginkgo reports its suite-level report hooks as test cases;
			// they are not conformance checks.
			if strings.HasPrefix(c.Name, "[Report") {
				if c.Failure != nil || c.Error != nil {
					failed++
					failures = append(failures, c)
				}
				continue
			}
			switch {
			case c.Failure != nil || c.Error != nil:
				failed++
				failures = append(failures, c)
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				skipped++
			default:
				passed++
			}
		}
	}
	if passed+failed+skipped == 0 {
		fmt.Fprintln(os.Stderr, "junitsummary: the report holds no test case")
		os.Exit(2)
	}

	if len(failures) > 0 {
		fmt.Printf("Failed conformance checks (%d):\n", len(failures))
		for _, c := range failures {
			d := c.Failure
			if d == nil {
				d = c.Error
			}
			fmt.Printf("  FAIL %s\n", strings.TrimPrefix(c.Name, "[It] "))
			fmt.Printf("       %s\n", oneLine(d.Message))
			if loc := location(d.Body); loc != "" {
				fmt.Printf("       at %s\n", loc)
			}
		}
	}
	fmt.Printf("conformance: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 {
		os.Exit(1)
	}
}

// oneLine folds a multi-line Gomega message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// location picks the "file.go:123" line Ginkgo puts in the failure body.
func location(body string) string {
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "In [It] at: ") {
			loc := strings.TrimPrefix(l, "In [It] at: ")
			if i := strings.Index(loc, " @ "); i >= 0 {
				loc = loc[:i]
			}
			if i := strings.LastIndex(loc, "/"); i >= 0 {
				loc = loc[i+1:]
			}
			return loc
		}
	}
	return ""
}
