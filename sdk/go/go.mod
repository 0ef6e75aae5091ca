module github.com/promptvault/promptvault/sdk/go

go 1.24
