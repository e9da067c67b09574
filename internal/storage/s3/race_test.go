package s3

import (
	"context"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestRetryParentRace(t *testing.T) {
	race := minio.ErrorResponse{StatusCode: 409, Code: "ExistingObjectIsDirectory"}
	other := minio.ErrorResponse{StatusCode: 403, Code: "AccessDenied"}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		answers   []error // one per attempt; the last repeats
		wantCalls int
		wantErr   error
	}{
		{"succeeds at once", context.Background(), []error{nil}, 1, nil},
		{"race, then written", context.Background(), []error{race, race, nil}, 3, nil},
		{"race every time: bounded", context.Background(), []error{race}, parentRaceAttempts, race},
		{"other errors are not retried", context.Background(), []error{other}, 1, other},
		{"not after the context ends", canceled, []error{race}, 1, race},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := retryParentRace(tc.ctx, func() error {
				calls++
				return tc.answers[min(calls, len(tc.answers))-1]
			})
			if calls != tc.wantCalls || err != tc.wantErr {
				t.Fatalf("%d calls, err %v; want %d calls, err %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}
