#!/usr/bin/env perl
# utt2spk (file arguments or stdin) -> spk2utt on stdout, speakers in order of first
# appearance, as Kaldi's utils/utt2spk_to_spk2utt.pl does.
# Usage: utt2spk_to_spk2utt.pl data/train/utt2spk > data/train/spk2utt
use strict;
use warnings;
my (@order, %utts);
while (my $line = <>) {
  my @f = split(' ', $line);
  next unless @f;
  die "utt2spk_to_spk2utt.pl: bad line: $line" unless @f == 2;
  my ($utt, $spk) = @f;
  push @order, $spk unless exists $utts{$spk};
  push @{$utts{$spk}}, $utt;
}
print "$_ @{$utts{$_}}\n" for @order;
